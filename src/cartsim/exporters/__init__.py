"""Exports of the one model definition to other tools' formats (SBML, ...)."""


class ExportError(ValueError):
    """The model or scenario uses a construct the target format cannot express exactly."""
