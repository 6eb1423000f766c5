"""Operations: storage usage, metrics, alerts, backups, retention, archival, migration."""
