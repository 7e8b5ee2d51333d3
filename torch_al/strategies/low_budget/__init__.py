"""Methods for low budgets and a cold start, on the pool's points in an embedding space: TypiClust
(typiclust.py), ProbCover (probcover.py) and MaxHerding (maxherding.py), each reading its points
through features.py."""
