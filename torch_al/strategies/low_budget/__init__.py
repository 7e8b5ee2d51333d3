"""Methods for low budgets and a cold start, on the pool's points in an embedding space: TypiClust
(typiclust.py) and ProbCover (probcover.py), both reading their points through features.py."""
