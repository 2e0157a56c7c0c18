"""What grading compares a learner's output with, beyond the solutions' own outputs: per day, the outputs of the
typical mistakes its checks name (`checks.spec.Mistake`) and references that are a model's behaviour rather than a
solution's output (`Check.expected_from`). Run only when the references are built; their results are stored with the
references. They live beside the solutions because they are near-answers: no learner distribution ships them."""
