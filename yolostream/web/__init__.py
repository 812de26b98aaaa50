"""The web dashboard and HTTP API of `yolostream serve` (needs the ``web`` extra: fastapi, uvicorn, python-multipart).

Modules: `auth` (bearer token, session cookie), `limits` (upload size), `images` (guarded decoding), `live`
(shared JPEG encoding for viewers), `counts` (objects per class over time), `events` (alarms from the SQLite
sink), `geometry` (saving zones and lines back to the config file), `state` (what the routes read), `api` and
`views` (the routes), `app` (the FastAPI factory), `server` (uvicorn in a thread). Nothing here is imported
by the core package.
"""
