"""The segment language: parse segments.yaml into a tree and compile it to one SQL SELECT."""
