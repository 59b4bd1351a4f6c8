"""mnist-serve's HTTP service: `app.main:app` for uvicorn, `app.main.create_app` for tests and embedding."""
