"""Video files in and out: the one place Vigil opens inputs, encodes H.264 and muxes MP4.

- ``h264``: inputs (``open_input``, ``probe``, ``decode``), the libx264 settings
  (``Encoding``: ``FILE``, ``EXPORT``, ``LIVE``), MP4 output (``Mp4Output``: faststart files
  or fragmented MP4 in memory), ``H264File`` for constant-rate frames, ``Fragmenter`` for live
  video, ``partial_file`` for fail-closed writes.
"""
