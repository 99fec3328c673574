"""Console pages of the message queue: thin views over the selectors and services, one module per page family."""
