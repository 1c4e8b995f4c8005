"""The notebook face: magics, widgets and display. Only here is IPython imported."""
