"""Storage layer: the PostgreSQL pool and migrations, the Redis client, embedded servers."""
