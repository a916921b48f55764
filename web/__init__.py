"""The web process: the Falcon app gunicorn serves (auth, companies, members, keys, health)."""
