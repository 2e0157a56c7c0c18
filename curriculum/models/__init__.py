"""The model zoo: the course's own small models, shipped with the package and loaded offline.

    from curriculum.models import load_model
    model = load_model("induction-2l")        # days 1-3
    model = load_model("array-2l1h")          # day 4
    model = load_model("toy-gpt")             # day 5

Retrain one from its seeded recipe with `python -m curriculum.models train NAME [--device cuda]`; print the
measured behaviour of the shipped weights with `python -m curriculum.models measure NAME`.
"""

from curriculum.models.loading import ZOO, ZOO_STAND_INS, load_from_dir, load_model, model_dir

__all__ = ["ZOO", "ZOO_STAND_INS", "load_from_dir", "load_model", "model_dir"]
