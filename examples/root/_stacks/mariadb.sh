#!/bin/sh
# MariaDB for the example stacks: initialise once (root password, database, seed SQL), then serve.
set -eu
mkdir -p /run/mysqld && chown mysql /run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql >/dev/null
  mariadbd --user=mysql --skip-networking --socket=/run/mysqld/boot.sock &
  pid=$!
  until mariadb-admin --socket=/run/mysqld/boot.sock ping --silent 2>/dev/null; do sleep 0.2; done
  mariadb --socket=/run/mysqld/boot.sock <<SQL
ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('${MYSQL_ROOT_PASSWORD}');
CREATE USER root@'%' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;
CREATE DATABASE \`${MYSQL_DATABASE}\`;
SQL
  for seed in /seed/*.sql; do
    [ -f "$seed" ] && mariadb --socket=/run/mysqld/boot.sock "$MYSQL_DATABASE" <"$seed"
  done
  kill "$pid"
  wait "$pid" || true
fi
exec mariadbd --user=mysql --bind-address=0.0.0.0
