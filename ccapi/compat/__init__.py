"""Compat layer: OpenAI Chat, OpenAI Responses and Anthropic Messages clients ride native
sessions. Format translation and session affinity live here, independent of HTTP."""
