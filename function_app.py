"""Azure Functions entry point (Python v2 model): the platform indexes `app`, built by `service.app.create_app`.

The routes and the timer are in service/app.py, one line each. No settings are read here: the runtime reads the
app settings from the environment on the first request.
"""

from service.app import create_app

app = create_app()
