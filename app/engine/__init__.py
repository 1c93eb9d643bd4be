"""Parent-side engine API. llama_cpp is imported only in app.engine.worker, in a child process."""
