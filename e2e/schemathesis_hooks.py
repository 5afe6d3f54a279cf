"""Schemathesis hooks for e2e/openapi.sh (loaded through SCHEMATHESIS_HOOKS).

tus 1.0's PATCH and creation-with-upload bodies are `application/offset+octet-stream`,
a media type schemathesis cannot generate by itself: it gets raw bytes."""

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=4096))
