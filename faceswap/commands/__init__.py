"""click commands, one module per stage; each builds a config and calls the stage."""
