"""A learned classifier of a citizen's text: character n-grams weighted by TF-IDF and a linear model.

Chinese has no spaces and citizens write the same matter in many words ("没电", "停点",
"黑灯瞎火"), so the features are character 1- to 3-grams within each run of letters, digits or
hanzi (padded with a space at both ends, as scikit-learn's `char_wb` analyzer does), weighted by
TF-IDF (smoothed idf, sublinear tf, L2-normalised rows). The model is a multinomial logistic
regression fitted with scipy's truncated Newton; complement naive Bayes and a linear SVM (squared hinge,
one-vs-rest) are here too because the choice was made by measurement: grouped cross-validation
on the labelled set (copies of one core matter never split between training and testing),
`python -m bench.classify --select`; figures in bench/RESULTS.md.

Classes are a category, or a category with `!` for a danger to life or safety, so the model
also learns which wordings are dangers. Pure: numpy and scipy only, no state but the fitted
weights; training on the 555 labelled contacts takes well under a second, so the shipped
classifier (`dispatch.intake.classify`) trains once per process on first use.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import minimize

Model = Literal["logistic", "complement_nb", "linear_svm"]
DANGER = "!"
"""Suffix of a class that is a danger to life or safety (priority 1)."""

_RUN = re.compile(r"\w+")
Matrix: TypeAlias = sparse.csr_matrix
Floats: TypeAlias = npt.NDArray[np.float64]


def ngrams(text: str, low: int = 1, high: int = 3) -> list[str]:
    """Character n-grams of `text` within its runs of word characters, each run padded by spaces."""
    out: list[str] = []
    for run in _RUN.findall(text.lower()):
        padded = f" {run} "
        for n in range(low, high + 1):
            out += [padded[i:i + n] for i in range(len(padded) - n + 1)]
    return out


@dataclass(frozen=True, slots=True)
class Vectorizer:
    """TF-IDF over character n-grams: the vocabulary and idf of a training set."""

    vocabulary: dict[str, int]
    idf: Floats
    high: int = 3

    @classmethod
    def fit(cls, texts: Sequence[str], high: int = 3) -> Vectorizer:
        """The vocabulary (sorted, so a fit is deterministic) and smoothed idf of `texts`."""
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(ngrams(text, 1, high)))
        vocabulary = {gram: i for i, gram in enumerate(sorted(df))}
        n = len(texts)
        idf = np.array([math.log((1 + n) / (1 + df[g])) + 1 for g in sorted(df)])
        return cls(vocabulary, idf, high)

    def features(self, text: str) -> tuple[npt.NDArray[np.int64], Floats]:
        """One text's row as (column indices, values): what `transform` gives, without scipy."""
        tf = Counter(g for g in ngrams(text, 1, self.high) if g in self.vocabulary)
        columns = np.fromiter((self.vocabulary[g] for g in tf), dtype=np.int64, count=len(tf))
        values = np.log(np.fromiter(tf.values(), dtype=np.float64, count=len(tf))) + 1.0
        values *= self.idf[columns]
        norm = float(np.sqrt(values @ values))
        return columns, values / norm if norm else values

    def transform(self, texts: Iterable[str]) -> Matrix:
        """Rows of sublinear tf times idf, L2-normalised; n-grams not in the vocabulary are dropped."""
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        count = 0
        for row, text in enumerate(texts):
            count += 1
            tf = Counter(g for g in ngrams(text, 1, self.high) if g in self.vocabulary)
            for gram, k in tf.items():
                rows.append(row)
                cols.append(self.vocabulary[gram])
                vals.append(1.0 + math.log(k))
        x = sparse.csr_matrix((vals, (rows, cols)), shape=(count, len(self.vocabulary)))
        x = sparse.csr_matrix(x.multiply(self.idf[np.newaxis, :]))
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        normalised: Matrix = sparse.csr_matrix(sparse.diags(1.0 / norms) @ x)
        return normalised


@dataclass(frozen=True, slots=True)
class TextClassifier:
    """A fitted linear model over TF-IDF character n-grams: scores are `x @ weights + bias`."""

    vectorizer: Vectorizer
    classes: tuple[str, ...]
    weights: Floats
    bias: Floats

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str], *, model: Model = "logistic",
            c: float = 10.0, high: int = 3) -> TextClassifier:
        """Fit `model` on labelled texts (`c`: inverse regularisation; for naive Bayes, 1/alpha)."""
        vectorizer = Vectorizer.fit(texts, high)
        x = vectorizer.transform(texts)
        classes = tuple(sorted(set(labels)))
        y = np.array([classes.index(label) for label in labels])
        fit = {"logistic": _logistic, "complement_nb": _complement_nb, "linear_svm": _linear_svm}[model]
        weights, bias = fit(x, y, len(classes), c)
        return cls(vectorizer, classes, weights, bias)

    def scores(self, texts: Sequence[str]) -> Floats:
        """One row of class scores per text."""
        return np.asarray(self.vectorizer.transform(texts) @ self.weights) + self.bias

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The best-scoring class of each text (one at a time: ~20 us a text where building a
        sparse matrix costs ~400 us; intake classifies one SMS at a time)."""
        out: list[str] = []
        for text in texts:
            columns, values = self.vectorizer.features(text)
            out.append(self.classes[int(np.argmax(values @ self.weights[columns] + self.bias))])
        return out


def _one_hot(y: npt.NDArray[np.int64], k: int) -> Floats:
    out = np.zeros((len(y), k))
    out[np.arange(len(y)), y] = 1.0
    return out


def _minimise(loss: object, size: int) -> Floats:
    """The weights minimising a convex loss, by scipy's truncated Newton (TNC): 0.4-0.8 s for the
    labelled set on a busy 2-core machine, where L-BFGS-B, which reaches the same optimum, took
    10-25 s (its BLAS threads spin against the other processes)."""
    found = minimize(loss, np.zeros(size), jac=True, method="TNC", options={"maxfun": 1000})
    return np.asarray(found.x, dtype=np.float64)


def _logistic(x: Matrix, y: npt.NDArray[np.int64], k: int, c: float) -> tuple[Floats, Floats]:
    """Multinomial logistic regression, L2 penalty 1/(2c) on the weights (not the bias)."""
    d = x.shape[1]
    target = _one_hot(y, k)

    def loss(theta: Floats) -> tuple[float, Floats]:
        w, b = theta[:d * k].reshape(d, k), theta[d * k:]
        z = np.asarray(x @ w) + b
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = np.exp(log_p)
        value = -float((target * log_p).sum()) + float((w * w).sum()) / (2 * c)
        g = p - target
        grad_w = np.asarray(x.T @ g) + w / c
        return value, np.concatenate([grad_w.ravel(), g.sum(axis=0)])

    theta = _minimise(loss, d * k + k)
    return theta[:d * k].reshape(d, k), theta[d * k:]


def _linear_svm(x: Matrix, y: npt.NDArray[np.int64], k: int, c: float) -> tuple[Floats, Floats]:
    """One-vs-rest linear SVM with the squared hinge loss (as LinearSVC), penalty 1/2 |w|^2, loss * c."""
    d = x.shape[1]
    sign = 2 * _one_hot(y, k) - 1

    def loss(theta: Floats) -> tuple[float, Floats]:
        w, b = theta[:d * k].reshape(d, k), theta[d * k:]
        margin = 1 - sign * (np.asarray(x @ w) + b)
        active = np.maximum(margin, 0)
        value = c * float((active * active).sum()) + float((w * w).sum()) / 2
        g = -2 * c * active * sign
        grad_w = np.asarray(x.T @ g) + w
        return value, np.concatenate([grad_w.ravel(), g.sum(axis=0)])

    theta = _minimise(loss, d * k + k)
    return theta[:d * k].reshape(d, k), theta[d * k:]


def _complement_nb(x: Matrix, y: npt.NDArray[np.int64], k: int, c: float) -> tuple[Floats, Floats]:
    """Complement naive Bayes (alpha = 1/c): a class scores high when its complement makes the
    text unlikely."""
    alpha = 1.0 / c
    per_class = np.asarray(_one_hot(y, k).T @ x)  # k x d
    complement = per_class.sum(axis=0) - per_class + alpha
    log_p = np.log(complement / complement.sum(axis=1, keepdims=True))
    return -log_p.T, np.zeros(k)
