"""The one residual loop (tokenizer.residual) against small reference computations."""

import torch

from genrec.tokenizer.kmeans import kmeans, nearest
from genrec.tokenizer.residual import codeword_sum, kmeans_fit, nearest_codeword, residual_fit, residual_quantize
from tests.tokenizer_fixtures import single_thread  # noqa: F401  (autouse)


def test_residual_quantize_chains_levels_by_eq_6():
    # Level l keeps a fraction s_l of its residual: e^l = (1 - s_l) e^(l-1), a chain one can write out.
    scales = [0.5, 0.25, 0.75]
    x = torch.tensor([[8.0, -4.0], [2.0, 6.0]])

    def rule(level, residual):
        return scales[level] * residual, torch.full((len(residual),), level), (residual ** 2).sum()

    out = residual_quantize(x, 3, rule)
    e1, e2 = 0.5 * x, 0.5 * 0.75 * x
    e3 = e2 * 0.25
    assert [t.tolist() for t in out.inputs] == [x.tolist(), e1.tolist(), e2.tolist()]
    assert torch.allclose(out.quantized, x - e3)  # the sum of the levels is what the residual lost
    assert out.codes.tolist() == [[0, 1, 2], [0, 1, 2]]
    assert float(out.aux_loss) == float((x ** 2).sum() + (e1 ** 2).sum() + (e2 ** 2).sum())


def test_detach_residual_stops_gradients_between_levels():
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    w = torch.tensor(0.5, requires_grad=True)

    def rule(level, residual):  # level 0 quantizes w * r; level 1's loss is the sum of what is left
        quantized = w * residual if level == 0 else torch.zeros_like(residual)
        return quantized, torch.zeros(len(residual), dtype=torch.long), residual.sum() * (level == 1)

    (grad,) = torch.autograd.grad(residual_quantize(x, 2, rule).aux_loss, w)
    assert float(grad) == -float(x.sum())  # d/dw sum(x - w x)
    detached = residual_quantize(x, 2, rule, detach_residual=True).aux_loss
    assert not detached.requires_grad  # level 1 sees sg(w x): no path back to w


def test_nearest_codeword_is_greedy_nearest_per_level_and_decodes_to_the_same_sum():
    torch.manual_seed(0)
    x = torch.randn(60, 4)
    books = [torch.randn(5, 4), torch.randn(5, 4) * 0.3]
    out = residual_quantize(x, 2, nearest_codeword(books))
    r = x.clone()
    for level, book in enumerate(books):
        expect = ((r[:, None] - book[None]) ** 2).sum(-1).argmin(1)
        assert torch.equal(out.codes[:, level], expect)
        r = r - book[expect]
    assert torch.equal(out.quantized, codeword_sum(out.codes, books))
    assert float(out.aux_loss) == 0.0


def test_codeword_sum_hand_case():
    books = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[10.0, 10.0], [-1.0, 0.0]])]
    assert codeword_sum(torch.tensor([[0, 1], [1, 0]]), books).tolist() == [[0.0, 0.0], [10.0, 11.0]]


def test_residual_fit_is_kmeans_on_each_levels_residual():
    torch.manual_seed(1)
    x = torch.randn(300, 3) * torch.tensor([4.0, 2.0, 1.0])
    books, codes = residual_fit(x, 3, kmeans_fit(5, seed=7, iters=4))
    residual = x.clone()
    for level in range(3):  # reference: K-Means (seed 7 + level) on what the previous levels left
        result = kmeans(residual, 5, seed=7 + level, iters=4)
        assert torch.equal(books[level], result.centroids) and torch.equal(codes[level], result.labels)
        residual = residual - result.centroids[result.labels]


def test_residual_fit_rule_chunks_and_copy():
    torch.manual_seed(2)
    x = torch.randn(50, 3)
    keep = x.clone()

    def fit(level, residual):  # codebook = 4 fixed rows of the residual entering the level
        return residual[:4].clone(), nearest(residual, residual[:4])[0]

    def halve(level, rows):
        return 0.5 * rows, None, None

    books, _ = residual_fit(x, 3, fit, halve, chunk=7)
    assert torch.equal(x, keep)  # copy=True: the caller's tensor is untouched
    assert torch.equal(books[1], 0.5 * x[:4]) and torch.equal(books[2], 0.25 * x[:4])
    assert all(torch.equal(a, b) for a, b in zip(books, residual_fit(x, 3, fit, halve, chunk=1000)[0]))
    buffer = x.clone()
    residual_fit(buffer, 3, fit, halve, copy=False)
    assert torch.equal(buffer, 0.25 * x)  # copy=False: the buffer holds the residual entering the last level


def test_residual_fit_shrinks_error_each_level():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([c + 0.1 * torch.randn(50, 4, generator=g) for c in torch.randn(6, 4, generator=g) * 10])
    books, _ = residual_fit(x, 3, kmeans_fit(6, seed=0))
    errors = [float(((x - residual_quantize(x, l, nearest_codeword(books)).quantized) ** 2).sum(1).mean())
              for l in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]
