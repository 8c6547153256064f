"""What users run: the CLI, the Gradio app, folder scans and their prediction I/O."""
