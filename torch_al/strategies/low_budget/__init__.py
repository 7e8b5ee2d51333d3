"""Methods for low budgets and a cold start, on the pool's points in an embedding space: TypiClust
(typiclust.py), ProbCover (probcover.py), MaxHerding (maxherding.py) and UHerding (uherding.py), each
reading its points through features.py."""
