"""The samplers and pruners a space can name, and how each is built for a budget."""
