"""R3-VAE equations 1-13 on small hand-computable cases, and how gradients flow."""

import math

import pytest
import torch

from genrec.tokenizer.kmeans import kmeans
from genrec.tokenizer.quantize import ste_quantize
from genrec.tokenizer.r3vae import R3VAE, R3VAEConfig
from genrec.tokenizer.regularizers import preference_discrimination, semantic_cohesion
from tests.tokenizer_fixtures import single_thread  # noqa: F401  (autouse)


def model(dim=2, **kw):
    cfg = R3VAEConfig(**{"num_levels": 1, "codebook_size": 3, "temperature": 1.0, "top_k": 3, **kw})
    return R3VAE(dim, cfg)


def test_reference_projection_eqs_1_2():
    m = model()
    with torch.no_grad():
        m.reference.copy_(torch.tensor([2.0, 0.0]))
    alpha, e0 = m.project(torch.tensor([[3.0, 4.0]]))
    assert alpha.tolist() == [1.5]  # x.r / ||r||^2 = 6 / 4
    assert e0.tolist() == [[0.0, 4.0]]  # x - alpha r
    alpha, e0 = model(use_reference=False).project(torch.tensor([[3.0, 4.0]]))
    assert alpha.tolist() == [0.0] and e0.tolist() == [[3.0, 4.0]]


@pytest.mark.parametrize("renormalize", [False, True])
def test_rating_eqs_3_to_7(renormalize):
    m = model(top_k=2, renormalize_top_k=renormalize, temperature=0.5)
    book = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    with torch.no_grad():
        m.codebooks[0] = book
    e = torch.tensor([[1.0, 0.0]])
    e_hat, code, _ = m.rate(0, e)
    s = torch.tensor([1.0, 0.0, -1.0])  # eq 3: cosines
    w = torch.exp(s / 0.5) / torch.exp(s / 0.5).sum()  # eq 4
    top = w[:2] / (w[:2].sum() if renormalize else 1.0)
    expected = top[0] * book[0] + top[1] * book[1]  # eq 5 over the top-2
    assert torch.allclose(e_hat[0], expected)
    assert code.tolist() == [0]  # eq 7
    out = m.quantize(e)
    assert torch.allclose(out.inputs[0], e) and out.codes.tolist() == [[0]]
    assert torch.allclose(out.quantized, e_hat)


def test_residual_chain_eq_6_and_reconstruction_eq_11():
    torch.manual_seed(0)
    m = model(dim=4, num_levels=3, codebook_size=5, top_k=2, use_sc=False, use_pd=False)
    x = torch.randn(6, 4)
    x_hat, out, alpha = m(x)
    _, e0 = m.project(x)
    e = e0
    for level in range(3):  # eq 6: each level's input is the previous input minus its e_hat
        assert torch.allclose(out.inputs[level], e, atol=1e-6)
        e = e - m.rate(level, e)[0]
    # Identity decoder: x - x_hat = x - alpha r - sum e_hat = e^(L), so L_rec = ||e^(L)||^2.
    assert torch.allclose(x - x_hat, e, atol=1e-5)
    loss, parts, _ = m.training_loss(x)
    assert float(loss.detach()) == pytest.approx(float((e ** 2).sum(1).mean().detach()), rel=1e-5)


def test_total_loss_eqs_12_13():
    torch.manual_seed(1)
    m = model(dim=4, num_levels=2, codebook_size=3, top_k=2, metric_weight=0.3)
    x = torch.randn(12, 4)
    loss, parts, codes = m.training_loss(x)
    x_hat, out, _ = m(x)
    codes2 = out.codes
    rec = ((x - x_hat) ** 2).sum(1).mean()
    sc = torch.stack([semantic_cohesion(out.inputs[l], codes2[:, l]) for l in range(2)]).mean()
    pd = torch.stack([preference_discrimination(b, 2.0) for b in m.codebooks]).mean()
    assert float(loss.detach()) == pytest.approx(float((rec + 0.3 * (-sc + pd)).detach()), rel=1e-5)
    assert torch.equal(codes, codes2)


def test_gradients_reach_codebooks_and_reference_without_ste():
    torch.manual_seed(2)
    m = model(dim=4, num_levels=2, codebook_size=4, top_k=4).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    loss, _, codes = m.training_loss(x)
    loss.backward()
    assert m.reference.grad.abs().sum() > 0
    # Every codeword gets a gradient (through its softmax weight), not only the argmax one as with an STE.
    assert (m.codebooks.grad.abs().sum(-1) > 0).all()
    # The gradient is the true derivative of the forward computation (an STE's would not be).
    def f(reference, codebooks):
        with torch.no_grad():
            m.reference.copy_(reference)
            m.codebooks.copy_(codebooks)
        return m.training_loss(x)[0]
    ref, books = m.reference.detach().clone(), m.codebooks.detach().clone()
    eps = 1e-6
    for tensor, grad in ((ref, m.reference.grad.clone()), (books, m.codebooks.grad.clone())):
        flat = tensor.view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 7)):
            old = float(flat[i])
            flat[i] = old + eps
            up = f(ref, books).item()
            flat[i] = old - eps
            down = f(ref, books).item()
            flat[i] = old
            assert (up - down) / (2 * eps) == pytest.approx(float(grad.view(-1)[i]), rel=1e-4, abs=1e-7)


def test_ste_ablation_uses_the_nearest_codeword():
    m = model(rating="ste")
    with torch.no_grad():
        m.codebooks[0] = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    e_hat, code, aux = m.rate(0, torch.tensor([[0.2, 2.5]]))
    assert code.tolist() == [1] and e_hat.tolist() == [[0.0, 3.0]] and float(aux.detach()) > 0


def test_kmeans_initialization_is_on_each_layers_residuals():
    torch.manual_seed(3)
    x = torch.randn(200, 6)
    m = R3VAE(6, R3VAEConfig(num_levels=2, codebook_size=4, top_k=2, kmeans_iters=5))
    m.initialize(x)
    assert torch.allclose(m.reference, x.mean(0))
    _, e0 = m.project(x)
    first = kmeans(e0, 4, iters=5, seed=0).centroids
    assert torch.allclose(m.codebooks[0], first, atol=1e-5)
    residual = e0 - m.rate(0, e0)[0]
    assert torch.allclose(m.codebooks[1], kmeans(residual, 4, iters=5, seed=1).centroids, atol=1e-4)


def test_initialization_without_reference_leaves_the_input_alone():
    # e0 = x itself here: the in-place residual buffer of the K-Means init must not be x (it was).
    torch.manual_seed(4)
    x = torch.randn(200, 6)
    keep = x.clone()
    m = R3VAE(6, R3VAEConfig(num_levels=2, codebook_size=4, top_k=2, kmeans_iters=5, use_reference=False))
    m.initialize(x)
    assert torch.equal(x, keep)
    assert torch.equal(m.codebooks[0], kmeans(x, 4, iters=5, seed=0).centroids)
    residual = x - m.rate(0, x)[0]
    assert torch.allclose(m.codebooks[1], kmeans(residual, 4, iters=5, seed=1).centroids, atol=1e-5)


def test_random_initialization_draws_codewords_from_each_layers_residuals():
    torch.manual_seed(5)
    x = torch.randn(100, 6)
    m = R3VAE(6, R3VAEConfig(num_levels=2, codebook_size=4, top_k=2, kmeans_init=False))
    m.initialize(x)
    _, e0 = m.project(x)
    residual = e0 - m.rate(0, e0)[0]
    for book, rows in ((m.codebooks[0], e0), (m.codebooks[1], residual)):
        # every codeword is one of the rows entering its layer
        assert all(torch.isclose(rows, word, atol=1e-6).all(1).any() for word in book.detach())

def test_ste_forward_is_codeword_backward_is_identity():
    z = torch.tensor([[0.9, 0.1], [0.0, 2.2]], requires_grad=True)
    book = torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]], requires_grad=True)
    q, codes, loss = ste_quantize(z, book, beta=0.25)
    assert codes.tolist() == [0, 1] and torch.equal(q.detach(), book.detach()[[0, 1]])
    v = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    (grad_z,) = torch.autograd.grad((q * v).sum(), z)
    assert torch.equal(grad_z, v)  # straight through: identity to the encoder output
    assert torch.autograd.grad((q * v).sum(), book, allow_unused=True)[0] is None
    grad_z, grad_book = torch.autograd.grad(loss, (z, book))
    chosen = book.detach()[[0, 1]]
    assert torch.allclose(grad_z, 0.25 * 2 * (z.detach() - chosen) / 2)  # commitment term only
    expected_book = torch.zeros(3, 2)
    expected_book[[0, 1]] = 2 * (chosen - z.detach()) / 2  # codebook term only, unused row untouched
    assert torch.allclose(grad_book, expected_book)
    assert math.isclose(float(loss.detach()), float(((z.detach() - chosen) ** 2).sum(1).mean() * 1.25), rel_tol=1e-6)
