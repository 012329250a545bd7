<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<!--
  MapScribe captions grid: the style plugin/layers.py loads for every captions layer.

  * Tile outlines that read on any imagery: a dark line with a thin light line on top. Tiles
    without a caption (status 'nodata': too little imagery; 'failed': imagery not delivered)
    get a grey dashed outline instead, so the difference is not said by colour alone.
  * Each caption as a label over its tile, word-wrapped at about 24 characters, dark text on a
    light halo; an uncertain caption (status 'uncertain') is labelled "(uncertain) …".
    Labels are shown at every scale; where they would overlap, QGIS leaves some out, and
    zooming in shows the rest. With a caption pyramid (a "level" field), plugin/label_levels.py
    wraps these rules in one rule per level, so that only the level whose tiles suit the
    map's scale is outlined and labelled.
  * Map tips (View > Show Map Tips) and the display expression give the caption and its score,
    so hovering, identifying or a screen reader's feature list all say what the tile shows.
-->
<qgis version="3.22.0" styleCategories="Symbology|Labeling|Fields|MapTips" labelsEnabled="1">
  <renderer-v2 type="RuleRenderer" forceraster="0" enableorderby="0" symbollevels="0" referencescale="-1">
    <rules key="{7b1c5e0a-2f51-4a57-9b0c-6d1f1c0a0001}">
      <rule key="{7b1c5e0a-2f51-4a57-9b0c-6d1f1c0a0002}" symbol="0" label="Captioned tile" filter="&quot;status&quot; IS NULL OR &quot;status&quot; NOT IN ('nodata', 'failed')"/>
      <rule key="{7b1c5e0a-2f51-4a57-9b0c-6d1f1c0a0003}" symbol="1" label="Tile without a caption (no data, or its imagery failed)" filter="ELSE"/>
    </rules>
    <symbols>
      <symbol type="fill" name="0" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <Option type="Map">
            <Option type="QString" name="style" value="no"/>
            <Option type="QString" name="color" value="0,0,0,0"/>
            <Option type="QString" name="outline_style" value="solid"/>
            <Option type="QString" name="outline_color" value="20,20,40,255"/>
            <Option type="QString" name="outline_width" value="0.7"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="joinstyle" value="miter"/>
          </Option>
        </layer>
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <Option type="Map">
            <Option type="QString" name="style" value="no"/>
            <Option type="QString" name="color" value="0,0,0,0"/>
            <Option type="QString" name="outline_style" value="solid"/>
            <Option type="QString" name="outline_color" value="255,236,120,255"/>
            <Option type="QString" name="outline_width" value="0.25"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="joinstyle" value="miter"/>
          </Option>
        </layer>
      </symbol>
      <symbol type="fill" name="1" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <Option type="Map">
            <Option type="QString" name="style" value="no"/>
            <Option type="QString" name="color" value="0,0,0,0"/>
            <Option type="QString" name="outline_style" value="dash"/>
            <Option type="QString" name="outline_color" value="140,140,140,255"/>
            <Option type="QString" name="outline_width" value="0.3"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="joinstyle" value="miter"/>
          </Option>
        </layer>
      </symbol>
    </symbols>
  </renderer-v2>
  <labeling type="simple">
    <settings calloutType="simple">
      <text-style fieldName="CASE WHEN &quot;status&quot; = 'uncertain' THEN '(uncertain) ' || &quot;caption&quot; ELSE &quot;caption&quot; END" isExpression="1" fontSize="9" fontSizeUnit="Point" fontWeight="50" fontItalic="0" textColor="15,15,25,255" textOpacity="1" multilineHeight="1" allowHtml="0" capitalization="0" textOrientation="horizontal" blendMode="0" previewBkgrdColor="255,255,255,255">
        <families/>
        <text-buffer bufferDraw="1" bufferSize="1" bufferSizeUnits="MM" bufferColor="255,255,255,255" bufferOpacity="0.9" bufferNoFill="1" bufferJoinStyle="128" bufferBlendMode="0"/>
      </text-style>
      <text-format wrapChar="" autoWrapLength="24" useMaxLineLengthForAutoWrap="1" multilineAlign="1" formatNumbers="0" decimals="3" plussign="0" addDirectionSymbol="0"/>
      <placement placement="1" centroidInside="1" centroidWhole="0" fitInPolygonOnly="0" quadOffset="4" dist="0" distUnits="MM" xOffset="0" yOffset="0" offsetUnits="MM" rotationAngle="0" priority="5" polygonPlacementFlags="2" placementFlags="10" layerType="PolygonGeometry"/>
      <rendering scaleVisibility="0" scaleMin="0" scaleMax="0" drawLabels="1" displayAll="0" upsidedownLabels="0" labelPerPart="0" mergeLines="0" minFeatureSize="0" limitNumLabels="0" maxNumLabels="2000" obstacle="1" obstacleFactor="1" obstacleType="1" zIndex="0" fontLimitPixelSize="0" fontMinPixelSize="0" fontMaxPixelSize="10000" unplacedVisibility="0"/>
    </settings>
  </labeling>
  <aliases>
    <alias field="tile_id" name="Tile ID" index="1"/>
    <alias field="row" name="Grid row (from 0)" index="2"/>
    <alias field="col" name="Grid column (from 0)" index="3"/>
    <alias field="caption" name="Caption" index="4"/>
    <alias field="score" name="Score (mean log-probability)" index="5"/>
    <alias field="status" name="Status" index="6"/>
    <alias field="valid_fraction" name="Share of pixels with data" index="7"/>
    <alias field="is_edge" name="Reaches past the raster" index="8"/>
    <alias field="model" name="Model" index="9"/>
    <alias field="created" name="Captioned at (UTC)" index="10"/>
    <alias field="theme" name="Theme (the model's)" index="11"/>
    <alias field="theme_probability" name="Theme probability" index="12"/>
    <alias field="confidence" name="Confidence" index="13"/>
    <alias field="level" name="Level (0 = the whole area, coarsest)" index="14"/>
    <alias field="parent_id" name="Tile ID of the coarser tile around it" index="15"/>
  </aliases>
  <previewExpression>coalesce("caption", 'No caption: too little imagery in this tile')</previewExpression>
  <mapTip>&lt;p>&lt;strong>[% coalesce("caption", 'No caption: too little imagery in this tile') %]&lt;/strong>&lt;/p>
&lt;p>Score [% coalesce(format_number("score", 2), '–') %] (mean log-probability: closer to 0 is surer)&lt;br>
Row [% "row" + 1 %], column [% "col" + 1 %] of the grid, [% "status" %]&lt;/p></mapTip>
  <layerGeometryType>2</layerGeometryType>
</qgis>
