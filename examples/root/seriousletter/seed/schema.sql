CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('3f2a1c9d0b7e');
CREATE TABLE letters (id SERIAL PRIMARY KEY, subject TEXT NOT NULL, body TEXT NOT NULL);
INSERT INTO letters (subject, body) VALUES ('Welcome', 'A serious letter.');
