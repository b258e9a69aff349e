//! [`FlashAttentionBackend`]: the burn backend extension and its implementations.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::DType;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{Fusion, FusionBackend, FusionRuntime};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};

use super::launch;

/// A backend that runs FlashAttention-2. Tensors are `[.., seq, head_dim]` (any leading
/// dimensions), `q`, `k`, `v` of one shape; `lse` is `[.., seq]` f32.
pub trait FlashAttentionBackend: Backend {
    /// `(o, lse)`: the attention output and the natural-log logsumexp of each score row.
    fn flash_attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `(dq, dk, dv)` for upstream gradient `d_o`, from the forward's inputs and outputs.
    #[allow(clippy::too_many_arguments)]
    fn flash_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        o: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        d_o: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FlashAttentionBackend
    for CubeBackend<R, F, I, BT>
{
    fn flash_attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        launch::forward(q, k, v, causal, scale)
    }

    fn flash_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        o: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        d_o: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        launch::backward(q, k, v, o, lse, d_o, causal, scale)
    }
}

/// The fusion layer sees each kernel as one custom operation: it ends the current fused
/// block and runs the inner backend's kernel on the materialised inputs.
#[derive(Clone, Debug)]
struct FlashOp<B> {
    desc: CustomOpIr,
    causal: bool,
    scale: f32,
    _backend: std::marker::PhantomData<B>,
}

impl<B: FusionBackend + FlashAttentionBackend> Operation<B::FusionRuntime> for FlashOp<B> {
    fn execute(
        &self,
        handles: &mut HandleContainer<<B::FusionRuntime as FusionRuntime>::FusionHandle>,
    ) {
        let (inputs, outputs) = (&self.desc.inputs, &self.desc.outputs);
        let mut input = |i: usize| handles.get_float_tensor::<B>(&inputs[i]);
        if inputs.len() == 3 {
            let (q, k, v) = (input(0), input(1), input(2));
            let (o, lse) = B::flash_attention_forward(q, k, v, self.causal, self.scale);
            handles.register_float_tensor::<B>(&outputs[0].id, o);
            handles.register_float_tensor::<B>(&outputs[1].id, lse);
        } else {
            let ins: Vec<_> = (0..6).map(input).collect();
            let [q, k, v, o, lse, d_o]: [_; 6] = ins
                .try_into()
                .unwrap_or_else(|_| unreachable!("six inputs"));
            let (dq, dk, dv) =
                B::flash_attention_backward(q, k, v, o, lse, d_o, self.causal, self.scale);
            for (out, t) in outputs.iter().zip([dq, dk, dv]) {
                handles.register_float_tensor::<B>(&out.id, t);
            }
        }
    }
}

fn register_flash<B: FusionBackend + FlashAttentionBackend>(
    name: &'static str,
    inputs: Vec<FloatTensor<Fusion<B>>>,
    outputs: Vec<(burn::tensor::Shape, DType)>,
    causal: bool,
    scale: f32,
) -> Vec<FloatTensor<Fusion<B>>> {
    let client = inputs[0].client.clone();
    let streams = OperationStreams::with_inputs(&inputs);
    let outputs: Vec<TensorIr> = outputs
        .into_iter()
        .map(|(shape, dtype)| TensorIr::uninit(client.create_empty_handle(), shape, dtype))
        .collect();
    let inputs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let desc = CustomOpIr::new(name, &inputs, &outputs);
    let op = FlashOp::<B> {
        desc: desc.clone(),
        causal,
        scale,
        _backend: std::marker::PhantomData,
    };
    client.register(streams, OperationIr::Custom(desc), op)
}

impl<B: FusionBackend + FlashAttentionBackend> FlashAttentionBackend for Fusion<B> {
    fn flash_attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let rows = super::row_shape(&q.shape);
        let outputs = vec![(q.shape.clone(), q.dtype), (rows, DType::F32)];
        let [o, lse]: [_; 2] = register_flash::<B>(
            "flash_attention_forward",
            vec![q, k, v],
            outputs,
            causal,
            scale,
        )
        .try_into()
        .unwrap_or_else(|_| unreachable!("two outputs"));
        (o, lse)
    }

    fn flash_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        o: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        d_o: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let like_q = (q.shape.clone(), q.dtype);
        let outputs = vec![like_q.clone(), like_q.clone(), like_q];
        let [dq, dk, dv]: [_; 3] = register_flash::<B>(
            "flash_attention_backward",
            vec![q, k, v, o, lse, d_o],
            outputs,
            causal,
            scale,
        )
        .try_into()
        .unwrap_or_else(|_| unreachable!("three outputs"));
        (dq, dk, dv)
    }
}

/// Backward step of the autodiff graph: the state is everything the kernel needs.
#[derive(Debug)]
struct FlashBackward {
    causal: bool,
    scale: f32,
}

type FlashState<B> = [FloatTensor<B>; 5]; // q, k, v, o, lse

impl<B: FlashAttentionBackend> Backward<B, 3> for FlashBackward {
    type State = FlashState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let d_o = grads.consume::<B>(&ops.node);
        let [q, k, v, o, lse] = ops.state;
        let (dq, dk, dv) =
            B::flash_attention_backward(q, k, v, o, lse, d_o, self.causal, self.scale);
        for (node, grad) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: FlashAttentionBackend, C: CheckpointStrategy> FlashAttentionBackend for Autodiff<B, C> {
    fn flash_attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let backward = FlashBackward { causal, scale };
        let parents = [q.node.clone(), k.node.clone(), v.node.clone()];
        let (qp, kp, vp) = (q.primitive, k.primitive, v.primitive);
        match backward.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (o, lse) =
                    B::flash_attention_forward(qp.clone(), kp.clone(), vp.clone(), causal, scale);
                let state = [qp, kp, vp, o.clone(), lse.clone()];
                // lse is an output for callers, not a differentiable one (as in the course).
                (prep.finish(state, o), Self::from_inner(lse))
            }
            OpsKind::UnTracked(prep) => {
                let (o, lse) = B::flash_attention_forward(qp, kp, vp, causal, scale);
                (prep.finish(o), Self::from_inner(lse))
            }
        }
    }

    fn flash_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        o: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        d_o: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Called directly (not through a graph): a constant computation on the inner backend.
        let [q, k, v, o, lse, d_o] = [q, k, v, o, lse, d_o].map(Self::inner);
        let (dq, dk, dv) = B::flash_attention_backward(q, k, v, o, lse, d_o, causal, scale);
        (
            Self::from_inner(dq),
            Self::from_inner(dk),
            Self::from_inner(dv),
        )
    }
}
