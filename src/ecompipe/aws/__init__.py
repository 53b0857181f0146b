"""The AWS side: Lambda trigger, ECS task entry points, state machine (ASL), bootstrap."""
