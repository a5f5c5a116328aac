"""`python -m cnn_denoise.recipes`: the recipe book's command line."""

from cnn_denoise.recipes.book import cli

cli()
