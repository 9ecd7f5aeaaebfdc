"""What the Streamlit app (app.py) needs besides Streamlit: the service's HTTP client, question files."""
