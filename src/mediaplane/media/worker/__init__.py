"""One media job as a child process: `python -m mediaplane.media.worker <config.json>`.

    main.py         the process: config, pipeline bus, signals, stdin commands, stats
    kind.py         the interface every job kind implements (build, commands, stop, position)
    kinds/          one file per kind, and the table of them (kinds/__init__.py)
    context.py      what a kind builds on: the pipeline, its RTP inputs, how the job ends
    rtp_inputs.py   udpsrc -> rtpbin -> depayloader inputs (record, stream, composite)
    outputs.py      encoders, muxers and sinks (file, RTMP, HLS)
    gst.py codecs.py events.py   GStreamer helpers, codec tables, the event line

A kind imports the shared parts, never main.py (docs/media-manager.md).
"""
