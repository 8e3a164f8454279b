"""Graph passes: each takes a Graph and returns a new Graph; the driver lists them in order."""
