"""The dashboard's routers, one module per page or area of the JSON API."""
