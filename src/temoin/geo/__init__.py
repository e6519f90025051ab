"""Geography: territories, positions, distances."""
