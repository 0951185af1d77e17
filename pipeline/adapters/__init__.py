"""What talks to the outside: the PostgreSQL pool, migrations, the store, read models, the HTTP transport."""
