"""The worker process: settings, Temporal client, registration."""
