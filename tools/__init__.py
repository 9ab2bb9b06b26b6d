"""Developer tools that ship with the pack (the random model maker); nothing here is imported by the nodes."""
