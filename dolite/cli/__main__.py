from dolite.cli.main import app

app()
