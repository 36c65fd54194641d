"""The API's routes, one module per area; each exports ``router`` (included by ``app.api.application``)."""
