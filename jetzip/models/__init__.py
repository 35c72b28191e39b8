"""Models shipped inside the package (package data), so that ``pip install jetzip`` (not only an
editable install) finds the default model from any folder. Their cards are in the repository's
``models/`` folder."""
