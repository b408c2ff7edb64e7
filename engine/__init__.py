"""campaign engine: the importable core of the campaign tool."""
