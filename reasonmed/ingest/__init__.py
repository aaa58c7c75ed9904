"""Question ingestion: streaming loaders per public format, and the service that stores what they yield."""
