"""The people's web pages (``lifecert web serve``): the retirees' status page (and its
JSON under ``/api/v1/``) and the bureau staff's dashboard, on Starlette (ASGI) served by
uvicorn, reading the PostgreSQL read models. Every template, style sheet and script ships
in this package (package data): nothing is fetched from elsewhere at run time."""
