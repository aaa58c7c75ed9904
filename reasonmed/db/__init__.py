"""Database layer: the ORM schema, engines, migrations and every SQL statement the project runs."""
