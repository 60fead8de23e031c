"""Drawing what Vigil saw onto frames, and writing annotated video."""

from vigil.annotate.draw import Annotator
from vigil.annotate.writer import Mp4Writer

__all__ = ["Annotator", "Mp4Writer"]
