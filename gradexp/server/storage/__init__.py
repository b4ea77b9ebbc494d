"""Where the data lives: the database (engines, schema, migrations) and the object store."""
