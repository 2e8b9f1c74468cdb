"""Composition root: settings, the `safeguard` command line, the local Kafka broker. The only package that
reads the environment; it builds the real clients and hands them to producers, streams and sinks."""
