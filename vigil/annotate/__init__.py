"""Drawing what Vigil saw onto frames (annotated video is written by ``vigil.media``)."""

from vigil.annotate.draw import Annotator

__all__ = ["Annotator"]
