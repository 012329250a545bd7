<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<!--
  MapScribe regions: the style plugin/layers.py loads for every regions layer (connected tiles
  of one theme, dissolved; written by describing a captions layer).

  * Outlines only, never a fill, so the imagery stays visible: a wide dark line under a white
    dashed one. The dashes tell a region's edge from the tiles' solid outlines by their
    pattern, not by colour alone.
  * Each region is labelled with its theme and its share of the captioned area, "farmland
    (25%)", bold, on a light halo, above the captions' labels, at every scale.
  * Map tips and the display expression give the region's sentence ("Farmland in the
    north-west: 12 tiles, 3.4 km² (25% of the captioned area); typically …").
-->
<qgis version="3.22.0" styleCategories="Symbology|Labeling|Fields|MapTips" labelsEnabled="1">
  <renderer-v2 type="singleSymbol" forceraster="0" enableorderby="0" symbollevels="0" referencescale="-1">
    <symbols>
      <symbol type="fill" name="0" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <Option type="Map">
            <Option type="QString" name="style" value="no"/>
            <Option type="QString" name="color" value="0,0,0,0"/>
            <Option type="QString" name="outline_style" value="solid"/>
            <Option type="QString" name="outline_color" value="25,25,45,255"/>
            <Option type="QString" name="outline_width" value="1.6"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="joinstyle" value="round"/>
          </Option>
        </layer>
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <Option type="Map">
            <Option type="QString" name="style" value="no"/>
            <Option type="QString" name="color" value="0,0,0,0"/>
            <Option type="QString" name="outline_style" value="dash"/>
            <Option type="QString" name="outline_color" value="255,255,255,255"/>
            <Option type="QString" name="outline_width" value="0.6"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="joinstyle" value="round"/>
          </Option>
        </layer>
      </symbol>
    </symbols>
    <rotation/>
    <sizescale/>
  </renderer-v2>
  <labeling type="simple">
    <settings calloutType="simple">
      <text-style fieldName="&quot;theme&quot; || ' (' || format_number(&quot;share_percent&quot;, 0) || '%)'" isExpression="1" fontSize="11" fontSizeUnit="Point" fontWeight="75" fontItalic="0" textColor="10,10,20,255" textOpacity="1" multilineHeight="1" allowHtml="0" capitalization="0" textOrientation="horizontal" blendMode="0" previewBkgrdColor="255,255,255,255">
        <families/>
        <text-buffer bufferDraw="1" bufferSize="1.2" bufferSizeUnits="MM" bufferColor="255,255,255,255" bufferOpacity="0.95" bufferNoFill="1" bufferJoinStyle="128" bufferBlendMode="0"/>
      </text-style>
      <text-format wrapChar="" autoWrapLength="20" useMaxLineLengthForAutoWrap="1" multilineAlign="1" formatNumbers="0" decimals="3" plussign="0" addDirectionSymbol="0"/>
      <placement placement="1" centroidInside="1" centroidWhole="0" fitInPolygonOnly="0" quadOffset="4" dist="0" distUnits="MM" xOffset="0" yOffset="0" offsetUnits="MM" rotationAngle="0" priority="8" polygonPlacementFlags="2" placementFlags="10" layerType="PolygonGeometry"/>
      <rendering scaleVisibility="0" scaleMin="0" scaleMax="0" drawLabels="1" displayAll="0" upsidedownLabels="0" labelPerPart="0" mergeLines="0" minFeatureSize="0" limitNumLabels="0" maxNumLabels="2000" obstacle="1" obstacleFactor="1" obstacleType="1" zIndex="1" fontLimitPixelSize="0" fontMinPixelSize="0" fontMaxPixelSize="10000" unplacedVisibility="0"/>
    </settings>
  </labeling>
  <aliases>
    <alias field="region_id" name="Region (1 = the largest)" index="1"/>
    <alias field="theme" name="Theme" index="2"/>
    <alias field="tile_count" name="Tiles" index="3"/>
    <alias field="area_km2" name="Area (km², on the ellipsoid)" index="4"/>
    <alias field="share_percent" name="Share of the captioned area (%)" index="5"/>
    <alias field="position" name="Where in the area" index="6"/>
    <alias field="typical_caption" name="Typical caption" index="7"/>
    <alias field="sentence" name="Sentence" index="8"/>
    <alias field="level" name="Level of its tiles" index="9"/>
    <alias field="theme_source" name="Themes told from" index="10"/>
  </aliases>
  <previewExpression>"sentence"</previewExpression>
  <mapTip>&lt;p>&lt;strong>[% "sentence" %]&lt;/strong>&lt;/p></mapTip>
  <layerGeometryType>2</layerGeometryType>
</qgis>
