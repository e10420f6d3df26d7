#!/bin/sh
# Entrypoint of the MariaDB image: the first start of a container creates the database, the
# service user and the admin user from the environment (like the official mysql image), and
# the schema of qcc_proxy.nodes (v1.9: with health_check_model, migration recorded).
set -e
mkdir -p /run/mysqld /tmp
INIT=""
if [ ! -f /var/lib/mysql/.qcc-initialised ]; then
  cat > /tmp/init.sql <<SQL
CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\`;
CREATE USER IF NOT EXISTS '${MYSQL_USER}'@'%' IDENTIFIED BY '${MYSQL_PASSWORD}';
GRANT ALL PRIVILEGES ON \`${MYSQL_DATABASE}\`.* TO '${MYSQL_USER}'@'%';
CREATE USER IF NOT EXISTS 'admin'@'%' IDENTIFIED BY '${MYSQL_ADMIN_PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION;
USE \`${MYSQL_DATABASE}\`;
CREATE TABLE IF NOT EXISTS nodes (
  id VARCHAR(64) PRIMARY KEY, name VARCHAR(255) NOT NULL DEFAULT '', base_url TEXT NOT NULL,
  api_key TEXT NOT NULL, source_protocol VARCHAR(32) NOT NULL DEFAULT 'claude',
  health_check_method VARCHAR(10) NOT NULL DEFAULT 'cli', weight INT NOT NULL DEFAULT 1,
  enabled TINYINT NOT NULL DEFAULT 1, failed_count INT NOT NULL DEFAULT 0, last_error TEXT,
  health_check_model VARCHAR(128) DEFAULT 'claude-haiku-4-5-20251001');
INSERT IGNORE INTO nodes (id, name, base_url, api_key, last_error) VALUES
  ('n1', 'primary', 'https://api.example.test', 'sk-test-placeholder-1', ''),
  ('n2', 'backup', 'https://backup.example.test', 'sk-test-placeholder-2', '');
CREATE TABLE IF NOT EXISTS schema_migrations (version VARCHAR(64) PRIMARY KEY);
INSERT IGNORE INTO schema_migrations (version) VALUES ('20251201_nodes_health_check_model');
FLUSH PRIVILEGES;
SQL
  INIT="--init-file=/tmp/init.sql"
  touch /var/lib/mysql/.qcc-initialised
fi
exec /usr/sbin/mariadbd --no-defaults --user=root --datadir=/var/lib/mysql --basedir=/usr \
  --lc-messages-dir=/usr/share/mysql --character-sets-dir=/usr/share/mysql/charsets \
  --bind-address=0.0.0.0 --port=3306 --socket=/run/mysqld/mysqld.sock --skip-name-resolve \
  --pid-file=/run/mysqld/mysqld.pid --console $INIT
