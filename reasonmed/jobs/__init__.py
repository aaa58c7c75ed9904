"""The jobs the CLI, the Python API and the flows share: one function per job, typed in and out.

A job validates its input up front (a ``reasonmed.mistake.Mistake`` says what to fix), does the work
through the domain and the flows, and returns a typed result; printing, exit codes and progress displays
stay with the caller.
"""
