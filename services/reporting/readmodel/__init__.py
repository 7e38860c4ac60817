"""The read model: what the reporting service keeps of the other services' events, and how it is rebuilt."""
