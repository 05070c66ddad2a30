"""Code generation: templates, the model as C, and whole firmware projects."""

from .project import FitReport, GeneratedProject, generate_project

__all__ = ["FitReport", "GeneratedProject", "generate_project"]
