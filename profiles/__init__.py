"""The load profiles shipped with the package (YAML data; see docs/profiles.md)."""
