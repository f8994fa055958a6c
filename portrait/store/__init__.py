"""The application database: the servers (embedded or external) and their URLs (database), the schema migrations (migrate)."""
