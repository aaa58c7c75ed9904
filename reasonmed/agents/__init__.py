"""The six agents of the ReasonMed pipeline: a prompt template, a call through the LLM layer, a parser."""
