//! The document tree html5ever builds for [`super::render`]: nodes in one `Vec`, linked by
//! index (parent, first/last child, siblings), so building and dropping a page costs a few
//! reallocations instead of an `Rc` + `RefCell`s per node as in `markup5ever_rcdom`. Only
//! what rendering reads is kept: element names, text, and `<img>`'s `alt`; comments,
//! doctypes and other attributes are dropped. Every tree operation of html5ever's tree
//! builder (adoption agency, foster parenting, reparenting) is carried out exactly, so the
//! tree is the one a browser builds.

use std::borrow::Cow;
use std::cell::RefCell;

use html5ever::interface::{ElemName, ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::tendril::StrTendril;
use html5ever::{Attribute, LocalName, Namespace, QualName};

/// Index of a node in [`Dom::nodes`].
pub type NodeId = usize;

/// The document node.
pub const DOCUMENT: NodeId = 0;

pub enum NodeData {
    /// The document, or a template's contents (never rendered).
    Document,
    Element {
        name: QualName,
        /// The `alt` attribute of an `<img>`.
        alt: Option<StrTendril>,
        mathml_annotation_xml_integration_point: bool,
        template_contents: Option<NodeId>,
    },
    Text(StrTendril),
    /// Comments and processing instructions: in the tree, never rendered.
    Other,
}

pub struct Node {
    pub data: NodeData,
    pub parent: Option<NodeId>,
    pub first_child: Option<NodeId>,
    pub last_child: Option<NodeId>,
    pub prev_sibling: Option<NodeId>,
    pub next_sibling: Option<NodeId>,
}

impl Node {
    fn new(data: NodeData) -> Self {
        Self {
            data,
            parent: None,
            first_child: None,
            last_child: None,
            prev_sibling: None,
            next_sibling: None,
        }
    }
}

/// The tree (html5ever's sink, and its output).
pub struct Dom {
    /// Behind a `RefCell`: html5ever's `TreeSink` methods take `&self`.
    nodes: RefCell<Vec<Node>>,
}

impl Dom {
    /// An empty document, with room for a page of `html_len` bytes.
    pub fn with_capacity_for(html_len: usize) -> Self {
        let mut nodes = Vec::with_capacity(html_len / 32 + 16);
        nodes.push(Node::new(NodeData::Document));
        Self {
            nodes: RefCell::new(nodes),
        }
    }

    /// The nodes, indexed by [`NodeId`].
    pub fn into_nodes(self) -> Vec<Node> {
        self.nodes.into_inner()
    }

    fn push(&self, data: NodeData) -> NodeId {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node::new(data));
        nodes.len() - 1
    }
}

/// Appends `child` (which has no parent) as the last child of `parent`.
fn append(nodes: &mut [Node], parent: NodeId, child: NodeId) {
    let last = nodes[parent].last_child;
    nodes[child].parent = Some(parent);
    nodes[child].prev_sibling = last;
    nodes[child].next_sibling = None;
    match last {
        Some(last) => nodes[last].next_sibling = Some(child),
        None => nodes[parent].first_child = Some(child),
    }
    nodes[parent].last_child = Some(child);
}

/// Inserts `child` (which has no parent) just before `sibling`.
fn insert_before(nodes: &mut [Node], sibling: NodeId, child: NodeId) {
    let parent = nodes[sibling]
        .parent
        .expect("html5ever inserts only before nodes that have a parent");
    let prev = nodes[sibling].prev_sibling;
    nodes[child].parent = Some(parent);
    nodes[child].prev_sibling = prev;
    nodes[child].next_sibling = Some(sibling);
    nodes[sibling].prev_sibling = Some(child);
    match prev {
        Some(prev) => nodes[prev].next_sibling = Some(child),
        None => nodes[parent].first_child = Some(child),
    }
}

fn detach(nodes: &mut [Node], node: NodeId) {
    let Some(parent) = nodes[node].parent.take() else {
        return;
    };
    let (prev, next) = (nodes[node].prev_sibling, nodes[node].next_sibling);
    match prev {
        Some(prev) => nodes[prev].next_sibling = next,
        None => nodes[parent].first_child = next,
    }
    match next {
        Some(next) => nodes[next].prev_sibling = prev,
        None => nodes[parent].last_child = prev,
    }
    nodes[node].prev_sibling = None;
    nodes[node].next_sibling = None;
}

/// Appends `text` to `node` if it is a text node (adjacent text nodes are merged).
fn merge_text(nodes: &mut [Node], node: Option<NodeId>, text: &StrTendril) -> bool {
    match node.map(|n| &mut nodes[n].data) {
        Some(NodeData::Text(existing)) => {
            existing.push_tendril(text);
            true
        }
        _ => false,
    }
}

/// An element's name as html5ever's tree builder asks for it (owned: atoms are cheap to
/// clone, and no borrow of the node list outlives the call).
#[derive(Debug)]
pub struct Name {
    ns: Namespace,
    local: LocalName,
}

impl ElemName for Name {
    fn ns(&self) -> &Namespace {
        &self.ns
    }

    fn local_name(&self) -> &LocalName {
        &self.local
    }
}

impl TreeSink for Dom {
    type Handle = NodeId;
    type Output = Self;
    type ElemName<'a> = Name;

    fn finish(self) -> Self {
        self
    }

    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> NodeId {
        DOCUMENT
    }

    fn elem_name<'a>(&'a self, target: &'a NodeId) -> Name {
        match &self.nodes.borrow()[*target].data {
            NodeData::Element { name, .. } => Name {
                ns: name.ns.clone(),
                local: name.local.clone(),
            },
            _ => panic!("html5ever asked for the name of a node that is not an element"),
        }
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> NodeId {
        let alt = if &*name.local == "img" {
            attrs
                .into_iter()
                .find(|a| &*a.name.local == "alt")
                .map(|a| a.value)
        } else {
            None
        };
        let template_contents = flags.template.then(|| self.push(NodeData::Document));
        self.push(NodeData::Element {
            name,
            alt,
            mathml_annotation_xml_integration_point: flags.mathml_annotation_xml_integration_point,
            template_contents,
        })
    }

    fn create_comment(&self, _text: StrTendril) -> NodeId {
        self.push(NodeData::Other)
    }

    fn create_pi(&self, _target: StrTendril, _data: StrTendril) -> NodeId {
        self.push(NodeData::Other)
    }

    fn append(&self, parent: &NodeId, child: NodeOrText<NodeId>) {
        let mut nodes = self.nodes.borrow_mut();
        let child = match child {
            NodeOrText::AppendNode(node) => node,
            NodeOrText::AppendText(text) => {
                let last = nodes[*parent].last_child;
                if merge_text(&mut nodes, last, &text) {
                    return;
                }
                nodes.push(Node::new(NodeData::Text(text)));
                nodes.len() - 1
            }
        };
        append(&mut nodes, *parent, child);
    }

    fn append_based_on_parent_node(
        &self,
        element: &NodeId,
        prev_element: &NodeId,
        child: NodeOrText<NodeId>,
    ) {
        let has_parent = self.nodes.borrow()[*element].parent.is_some();
        if has_parent {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(&self, _: StrTendril, _: StrTendril, _: StrTendril) {}

    fn get_template_contents(&self, target: &NodeId) -> NodeId {
        match &self.nodes.borrow()[*target].data {
            NodeData::Element {
                template_contents: Some(contents),
                ..
            } => *contents,
            _ => panic!("html5ever asked for the contents of a node that is not a template"),
        }
    }

    fn same_node(&self, x: &NodeId, y: &NodeId) -> bool {
        x == y
    }

    fn set_quirks_mode(&self, _mode: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &NodeId, new_node: NodeOrText<NodeId>) {
        let mut nodes = self.nodes.borrow_mut();
        let child = match new_node {
            NodeOrText::AppendNode(node) => {
                detach(&mut nodes, node);
                node
            }
            NodeOrText::AppendText(text) => {
                let prev = nodes[*sibling].prev_sibling;
                if merge_text(&mut nodes, prev, &text) {
                    return;
                }
                nodes.push(Node::new(NodeData::Text(text)));
                nodes.len() - 1
            }
        };
        insert_before(&mut nodes, *sibling, child);
    }

    /// Only ever called for `<html>` and `<body>`, whose attributes rendering ignores.
    fn add_attrs_if_missing(&self, _target: &NodeId, _attrs: Vec<Attribute>) {}

    fn remove_from_parent(&self, target: &NodeId) {
        detach(&mut self.nodes.borrow_mut(), *target);
    }

    fn reparent_children(&self, node: &NodeId, new_parent: &NodeId) {
        let mut nodes = self.nodes.borrow_mut();
        while let Some(child) = nodes[*node].first_child {
            detach(&mut nodes, child);
            append(&mut nodes, *new_parent, child);
        }
    }

    fn is_mathml_annotation_xml_integration_point(&self, handle: &NodeId) -> bool {
        matches!(
            self.nodes.borrow()[*handle].data,
            NodeData::Element {
                mathml_annotation_xml_integration_point: true,
                ..
            }
        )
    }
}
